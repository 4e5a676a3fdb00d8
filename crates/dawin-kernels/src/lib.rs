//! CUDA kernels for DaWin (filled by issue 4).
