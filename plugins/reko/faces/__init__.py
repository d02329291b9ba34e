"""Faces: local detection and 128-d embeddings (dlib), the faces index, and search by photo.

Faces are biometric data: the analysis is opt-in per run (never a default `analyses` entry), an
uploaded query photo is embedded in memory and never stored, and nothing about a face (box,
distance, embedding) is logged.
"""
