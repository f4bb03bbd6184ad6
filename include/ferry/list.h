/* ferry/list.h: an intrusive doubly-linked list.
 *
 * Why: ferry keeps many small sets of live objects (requests in flight,
 * watched sockets, HTTP exchanges, delivery attempts, registered routes)
 * that must drop out in O(1) from wherever they are when they finish, and
 * each file used to write its own prev/next unlinking. One list here, in the
 * manner of the Linux kernel's list.h: the object embeds a ferry_list_t, the
 * set is a ferry_list_t head, and ferry_list_entry() gets the object back.
 *
 * Ownership: the list owns nothing; it only links. A head must be set up
 * with ferry_list_init() (an empty list links to itself). A node that is in
 * no list has NULL links, so a zeroed (calloc'd) object is "not linked", and
 * ferry_list_remove() on it does nothing. Everything is static inline: the
 * operations are a few pointer moves. */
#ifndef FERRY_LIST_H
#define FERRY_LIST_H

#include <stddef.h>

typedef struct ferry_list {
    struct ferry_list *prev, *next;
} ferry_list_t;

/* The object of type TYPE whose member MEMBER is NODE. */
#define ferry_list_entry(node, type, member) \
    ((type *)(void *)((char *)(node) - offsetof(type, member)))

static inline void ferry_list_init(ferry_list_t *head)
{
    head->prev = head->next = head;
}

static inline int ferry_list_empty(const ferry_list_t *head)
{
    return head->next == head;
}

/* Whether NODE is in a list now. */
static inline int ferry_list_linked(const ferry_list_t *node)
{
    return node->next != NULL;
}

static inline void ferry_list_link_(ferry_list_t *prev, ferry_list_t *node, ferry_list_t *next)
{
    node->prev = prev;
    node->next = next;
    prev->next = node;
    next->prev = node;
}

/* First in the list (the newest of what was pushed to the head). */
static inline void ferry_list_insert_head(ferry_list_t *head, ferry_list_t *node)
{
    ferry_list_link_(head, node, head->next);
}

/* Last in the list (first-in, first-out order). */
static inline void ferry_list_insert_tail(ferry_list_t *head, ferry_list_t *node)
{
    ferry_list_link_(head->prev, node, head);
}

/* Unlinks NODE from its list; does nothing when it is in none. */
static inline void ferry_list_remove(ferry_list_t *node)
{
    if (!node->next)
        return;
    node->prev->next = node->next;
    node->next->prev = node->prev;
    node->prev = node->next = NULL;
}

/* The first and last node, NULL when the list is empty. */
static inline ferry_list_t *ferry_list_first(const ferry_list_t *head)
{
    return head->next == head ? NULL : head->next;
}

static inline ferry_list_t *ferry_list_last(const ferry_list_t *head)
{
    return head->prev == head ? NULL : head->prev;
}

/* Walks the nodes from first to last; POS may not be removed meanwhile. */
#define ferry_list_foreach(pos, head) \
    for ((pos) = (head)->next; (pos) != (head); (pos) = (pos)->next)

/* The same where the body may remove (and free) POS: TMP keeps the next. */
#define ferry_list_foreach_safe(pos, tmp, head) \
    for ((pos) = (head)->next, (tmp) = (pos)->next; (pos) != (head); \
         (pos) = (tmp), (tmp) = (pos)->next)

#endif
