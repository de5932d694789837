"""The StoryCore dev stack: the whole suite as local processes, behind Traefik."""
