#!/usr/bin/env bash
echo "server started"
