"""The comparison: which runs, their rows, recipes, statistics, breakdowns, formats and the
study report."""
