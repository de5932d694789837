"""StoryCore sequences service: storyboard generation jobs and their worker."""
