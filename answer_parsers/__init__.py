"""Answer extraction and time-bounded, eval-free grading (the built-in "boxed" answer parser)."""
