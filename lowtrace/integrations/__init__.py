"""Framework integrations, each an optional extra: ``lowtrace.integrations.<framework>``."""
