"""The paper's protocol: labelled data sets, the fast grid, tuning on a validation split,
and the evaluation against the base CNN and a threshold-tuned control."""
