"""What the students' cross-validation results say: the paper's tables and figure beside ours, the comparisons
between configurations (:mod:`liser.results.report`), and λ chosen across DVC experiments
(:mod:`liser.results.lambda_search`)."""
