/* queue_cmd.h: `ferry queue -c FILE list|retry ID|drop ID`. */
#ifndef FERRY_QUEUE_CMD_H
#define FERRY_QUEUE_CMD_H

/* argv starts after "queue"; returns the exit code. */
int ferry__queue_cmd(const char *config_path, int argc, char **argv);

#endif
