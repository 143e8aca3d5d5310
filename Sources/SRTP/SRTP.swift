// SRTP module: see files in this folder.
