"""The studies, one package each: `train.py` trains its runs (torch), `report.py` makes its
report stage's table, headline numbers and figures (no torch). `dispatch.train` takes any
run id to its study's trainer."""
