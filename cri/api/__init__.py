"""Generated CRI v1 stubs (`make proto`); never edited by hand."""
