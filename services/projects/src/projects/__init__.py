"""StoryCore projects service."""
