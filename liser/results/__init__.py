"""What the students' cross-validation results say: the paper's tables and figure beside ours
(:mod:`liser.results.report`), paired contrasts between configurations over folds
(:mod:`liser.results.statistics`), λ chosen across DVC experiments (:mod:`liser.results.lambda_search`), and
experiments side by side (:mod:`liser.results.experiments`)."""
