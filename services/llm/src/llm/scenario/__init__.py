"""Story → scenario document (keys in French, as the existing clients expect)."""
