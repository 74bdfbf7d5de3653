// Server-rendered ISO times (<time datetime>) shown in the viewer's local time.
for (const time of document.querySelectorAll('time')) {
  const date = new Date(time.dateTime);
  if (!Number.isNaN(date.getTime())) time.textContent = date.toLocaleString([], { dateStyle: 'medium', timeStyle: 'short' });
}
