/*
 * list.h - intrusive circular doubly linked list (c-list style).
 *
 * Embed a list_node in the element, keep a list_node head, and get back to
 * the element with container_of. O(1) unlink and move-to-front are what the
 * LRU orders of the cache and of the ZAFP fast-path table need.
 */
#ifndef LMMS_LIST_H
#define LMMS_LIST_H

#include <stdbool.h>

typedef struct list_node {
	struct list_node *prev, *next;
} list_node;

static inline void list_init(list_node *head)
{
	head->prev = head->next = head;
}

static inline bool list_empty(const list_node *head)
{
	return head->next == head;
}

static inline void list_unlink(list_node *n)
{
	n->prev->next = n->next;
	n->next->prev = n->prev;
	n->prev = n->next = n;
}

static inline void list_push_front(list_node *head, list_node *n)
{
	n->next = head->next;
	n->prev = head;
	head->next->prev = n;
	head->next = n;
}

/* Make n the first element (most recently used). */
static inline void list_move_front(list_node *head, list_node *n)
{
	if (head->next == n)
		return;
	list_unlink(n);
	list_push_front(head, n);
}

#endif
