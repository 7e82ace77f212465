//! Protocol shells: one actor per protocol instance around a sans-I/O core
//! of package `mcr` (DESIGN.md, "Sans-I/O protocol cores").

pub mod igmp;
