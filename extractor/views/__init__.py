"""One module per page; views stay thin: forms in, services and selectors out."""
