"""The ground floor every other package stands on: settings, the root error, thread and logging
helpers, and the event records. It imports none of coldstream's other packages."""
