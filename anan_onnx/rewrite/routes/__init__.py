"""Exact shortcuts of the rewrite, one route a module: kernel means from window sums of
the input, the scaling moved past a MaxPool, and the blocked-layout scaling."""
