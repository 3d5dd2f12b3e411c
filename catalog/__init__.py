"""The shared record: settings, database schema and migrations, the content-addressed image
store, the job queue, and the image decoding and face detection every component shares.

Nothing here imports another namae package; everything else may import this.
"""
