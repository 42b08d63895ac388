//! Audio codecs. G.711 only for now; Opus and G.722 join behind a common trait later.

pub mod g711;
