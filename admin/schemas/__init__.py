"""marshmallow schemas: one per API resource. They validate input and shape output."""
