"""Model catalog and resolution: which files a profile uses, found or assembled locally."""
