"""Load testing to the knee: the step schedule, the generator, mergeable step tallies, the knee search."""
