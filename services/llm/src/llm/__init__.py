"""StoryCore llm service: the one place where the suite talks to language models."""
