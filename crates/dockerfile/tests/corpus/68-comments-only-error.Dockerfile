# syntax=docker/dockerfile:1
# This file only has comments

   # and blank lines
