"""blindframe inside Blender: scene extraction (``extract``), the add-on (``addon``, loaded by the
extension entry point ``bootstrap``), its background tasks (``tasks``) and its zip (``package``)."""
