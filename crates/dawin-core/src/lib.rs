//! DaWin core.
