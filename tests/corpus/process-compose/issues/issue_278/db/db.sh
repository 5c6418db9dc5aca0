#!/usr/bin/env bash
echo "db started"
