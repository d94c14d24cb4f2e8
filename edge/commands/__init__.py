"""Household commands handled locally, before and without the model ("prefer handling commands
locally", as Home Assistant puts it): recognised only with confidence (`english`, `chinese`),
carried out with the device's own tools (`runner`), confirmed in fixed words (`replies`)."""
