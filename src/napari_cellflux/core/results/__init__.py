"""What a run leaves behind: measurements, movies, a virtual plate read back."""
