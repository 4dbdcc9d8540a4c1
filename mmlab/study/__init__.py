"""The study: the summary and its figures, comparisons, explorers, and the notebook runner that
publishes the site."""
