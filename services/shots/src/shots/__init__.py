"""StoryCore shots service."""
