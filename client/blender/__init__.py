"""blindframe inside Blender: scene extraction (``extract``); the add-on's panel comes later."""
