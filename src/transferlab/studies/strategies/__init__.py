"""Which transfer strategy when, and nets cut at unit n."""
