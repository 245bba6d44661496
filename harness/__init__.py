"""tuneval's engine: suites, criteria, models, generation, store, comparison and the CLI.

Importing this package never imports torch; heavy libraries load where they are used.
"""

__version__ = "0.1.0"
