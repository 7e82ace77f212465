//! Test traffic: the engine behind `mcrgen send` / `mcrgen recv` and the
//! stream in `mcrd demo`.
