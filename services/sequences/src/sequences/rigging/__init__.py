"""Rigging: a character sheet (a keyframe, an uploaded image, or keypoints) becomes a glTF
skeleton. The sequences service owns it because it owns the image backends and keyframes."""
