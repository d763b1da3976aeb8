dist_man_MANS = man/speedmimi.8 man/speedmimi-api.7
