"""The comparison of runs: which runs, their rows, recipes, statistics and breakdowns, and
the comparison as tables, files, figures and the study's report.

- `comparison`: runs -> a `Comparison` (rows, pairs, warnings, where the errors are);
- `recipes`: each run's weights, recipe and machine; the "not like for like" warnings;
- `stats`: Wilson interval, McNemar, paired bootstrap, mean and std;
- `verdict`: the verdict across seeds (the test, power, ASO, Holm), calibration and length
  buckets with their intervals;
- `breakdown`: a run's test errors by class, confidence and review length;
- `review_lengths`: the full token counts of the test reviews;
- `formats`: the comparison as rich tables, markdown, csv and json;
- `figures`: the comparison's PNG figures;
- `study_report`: `report.md` of `imdb reproduce`;
- `html`, `html_data`, `html_figures`: `report.html`, the comparison as one self-contained
  page (`imdb report`, `imdb reproduce`): the page, what it shows beside the comparison,
  its plotly figures.
"""
