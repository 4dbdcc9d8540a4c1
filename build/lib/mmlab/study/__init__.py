"""The study: statistics over stored runs, the summary and its figures, comparisons, explorers, and the
notebook runner that publishes the site."""
