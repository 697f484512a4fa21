"""Runner→node placement history: one definition for the recorder and the webhook."""
