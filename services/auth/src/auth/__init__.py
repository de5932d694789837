"""StoryCore auth service."""
