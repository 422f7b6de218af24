"""The built-in model plugins, registered through the same hooks as third-party ones."""
