"""Code every Modelplane service imports: settings, database, events, outbox/inbox, errors, logs."""
