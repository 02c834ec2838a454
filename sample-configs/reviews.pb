
¥
reviews.protoreviews"$
ReviewsRequest

product_id ("&
Rating
stars (
color (	"I
Review
reviewer (	
text (	
rating (2.reviews.Rating"/
Summary
count (
average_stars (	"p
ReviewsReply

id (	
podname (	 
reviews (2.reviews.Review!
summary (2.reviews.Summary2G
Reviews<

GetReviews.reviews.ReviewsRequest.reviews.ReviewsReplybproto3