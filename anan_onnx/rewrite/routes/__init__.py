"""Exact shortcuts of the rewrite, one route a module: kernel means from window sums of
the input, the scaling moved past a MaxPool, the blocked-layout scaling, and one grouped
convolution with per-image weights."""
