"""Data: synthetic corpora (dysts, KernelSynth, TSMixup), real series, UCR/UEA and energy data, Arrow I/O."""
