"""Reading the text inside request images: decoding, fetching (allow-listed, SSRF-safe) and Tesseract OCR."""
