"""``mlkeel up``'s scheduling: what runs when (jobs), who runs it (leader), the record of
every run (runs), the loop that runs them (runner), and the same jobs written out for other
orchestrators (exports). Importing it does nothing."""
