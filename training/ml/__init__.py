"""Pure PyTorch / gymnasium code. No Django import, ever: a library a researcher could lift
out. Seeds, devices and dtypes are arguments; nothing here holds global state."""
