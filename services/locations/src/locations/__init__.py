"""StoryCore locations service."""
