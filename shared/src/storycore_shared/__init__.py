"""StoryCore's domain-free service kit. It never imports a service and never declares a table."""
