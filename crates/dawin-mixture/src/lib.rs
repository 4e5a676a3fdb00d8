//! Mixture models for DaWin coefficients (filled by issue 3).
